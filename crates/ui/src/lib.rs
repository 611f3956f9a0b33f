//! The web UI: a single-page app of plain ES modules (no build step) that talks only to the
//! cluster's public APIs through Admin Router, and the components' own views of it (the Mesos
//! master's at `/mesos`, Marathon's at `/marathon`). Everything is embedded in the binary;
//! Admin Router, the master and Marathon serve it with [`response`].
//!
//! Every page is served with [`CONTENT_SECURITY_POLICY`]: scripts, styles and connections from
//! the page's own origin only, so the UI needs no network beyond the cluster and no injected
//! text can run.

use std::borrow::Cow;

use http::header::{
    self, HeaderValue, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, ETAG, X_CONTENT_TYPE_OPTIONS,
};
use http::{Response, StatusCode};

/// One embedded file under `assets/`.
struct Embedded {
    path: &'static str,
    body: &'static [u8],
}

macro_rules! embedded {
    ($($path:literal),* $(,)?) => {
        &[$(Embedded { path: concat!("assets/", $path), body: include_bytes!(concat!("../assets/", $path)) }),*]
    };
}

/// The app's files, as the pages load them (relative to the document: `assets/...`).
const ASSETS: &[Embedded] = embedded![
    "app.css",
    "favicon.svg",
    "js/api.js",
    "js/dom.js",
    "js/main.js",
    "js/model.js",
    "js/poll.js",
    "js/pages/catalog.js",
    "js/pages/components.js",
    "js/pages/dashboard.js",
    "js/pages/jobs.js",
    "js/pages/login.js",
    "js/pages/marathon.js",
    "js/pages/mesos.js",
    "js/pages/nodes.js",
    "js/pages/organization.js",
    "js/pages/schema-form.js",
    "js/pages/service-form.js",
    "js/pages/services.js",
    "js/pages/tasks.js",
];

/// Which app a document starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// The DC/OS UI at Admin Router's `/`.
    Dcos,
    /// The Mesos master's UI (its `/`, Admin Router's `/mesos/`).
    Mesos,
    /// Marathon's UI (its `/`, Admin Router's `/marathon/`).
    Marathon,
}

impl View {
    fn title(self) -> &'static str {
        match self {
            View::Dcos => "Mesosphere DC/OS",
            View::Mesos => "Mesos",
            View::Marathon => "Marathon",
        }
    }

    fn name(self) -> &'static str {
        match self {
            View::Dcos => "dcos",
            View::Mesos => "mesos",
            View::Marathon => "marathon",
        }
    }
}

/// The `Content-Security-Policy` of every document and asset.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
     base-uri 'self'; form-action 'self'; object-src 'none'";

/// The HTML document of `view`. Its links are relative, so it works at `/`, under
/// `/mesos/` and `/marathon/` through Admin Router, and on the component's own port.
fn document(view: View) -> String {
    let title = view.title();
    let name = view.name();
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n\
         <link rel=\"icon\" href=\"assets/favicon.svg\" type=\"image/svg+xml\">\n\
         <link rel=\"stylesheet\" href=\"assets/app.css\">\n\
         <script type=\"module\" src=\"assets/js/main.js\"></script>\n\
         </head>\n<body data-view=\"{name}\">\n\
         <div id=\"application\"><p class=\"preloader\">Loading {title}&hellip;</p></div>\n\
         <noscript>The DC/OS web UI needs JavaScript.</noscript>\n</body>\n</html>\n"
    )
}

/// A file of the app: its content type and bytes, or `None` for a path that is not one.
/// `path` is relative to the document (`assets/js/main.js`).
///
/// In a debug build with `DCOS_UI_DIR` set to an absolute directory in the serving process
/// (for working on the UI: edit, reload), files are read from that directory instead of the
/// embedded copy; only names of the embedded files' shape are looked up there, never a path
/// leaving it. A release build always serves what it embeds.
fn asset(path: &str) -> Option<(&'static str, Cow<'static, [u8]>)> {
    let content_type = content_type(path)?;
    if let Some(dir) = dev_dir() {
        if !safe_relative(path) {
            return None;
        }
        let rel = path.strip_prefix("assets/")?;
        return std::fs::read(dir.join(rel))
            .ok()
            .map(|b| (content_type, Cow::Owned(b)));
    }
    ASSETS
        .iter()
        .find(|a| a.path == path)
        .map(|a| (content_type, Cow::Borrowed(a.body)))
}

/// The answer to `path` (`/`, `/index.html` or `/assets/...`) of a server showing `view`:
/// the document or a file, revalidated on every load (an upgraded binary changes them: a
/// 304 when `if_none_match` holds its `ETag`), never sniffed as another type, under
/// [`CONTENT_SECURITY_POLICY`]; `None` if `path` is not the UI's.
pub fn response(
    view: View,
    path: &str,
    if_none_match: Option<&HeaderValue>,
) -> Option<Response<bytes::Bytes>> {
    let (content_type, body) = match path {
        "/" | "/index.html" => (
            "text/html; charset=utf-8",
            bytes::Bytes::from(document(view)),
        ),
        p => match asset(p.strip_prefix('/')?)? {
            (t, Cow::Borrowed(b)) => (t, bytes::Bytes::from_static(b)),
            (t, Cow::Owned(b)) => (t, bytes::Bytes::from(b)),
        },
    };
    let etag = format!("\"{:016x}\"", fnv1a(&body));
    let unchanged = if_none_match
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let length = body.len();
    let mut resp = Response::new(if unchanged { bytes::Bytes::new() } else { body });
    *resp.status_mut() = if unchanged {
        StatusCode::NOT_MODIFIED
    } else {
        StatusCode::OK
    };
    let h = resp.headers_mut();
    if !unchanged {
        // Set here, so a HEAD (whose body the server drops) still says the length.
        h.insert(CONTENT_LENGTH, HeaderValue::from(length));
    }
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(ETAG, v);
    }
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    Some(resp)
}

/// `DCOS_UI_DIR`, in a debug build, when it is an absolute path.
fn dev_dir() -> Option<std::path::PathBuf> {
    if !cfg!(debug_assertions) {
        return None;
    }
    let dir = std::path::PathBuf::from(std::env::var_os("DCOS_UI_DIR")?);
    dir.is_absolute().then_some(dir)
}

/// The total size of the embedded files, in bytes.
pub fn embedded_size() -> usize {
    ASSETS.iter().map(|a| a.body.len()).sum()
}

/// FNV-1a (64 bits): an entity tag that changes when the bytes do (not a security measure).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn content_type(path: &str) -> Option<&'static str> {
    let ext = path.rsplit_once('.')?.1;
    Some(match ext {
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        _ => return None,
    })
}

/// `assets/` then segments of `[A-Za-z0-9._-]` that are not `.` or `..`.
fn safe_relative(path: &str) -> bool {
    let Some(rel) = path.strip_prefix("assets/") else {
        return false;
    };
    rel.split('/').all(|seg| {
        !seg.is_empty()
            && seg != "."
            && seg != ".."
            && seg
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_under_assets_is_embedded_and_nothing_else() {
        fn walk(dir: &std::path::Path, base: &std::path::Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, base, out);
                } else {
                    let rel = p.strip_prefix(base).unwrap().to_string_lossy();
                    out.push(format!("assets/{rel}"));
                }
            }
        }
        let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
        let mut on_disk = Vec::new();
        walk(&base, &base, &mut on_disk);
        on_disk.sort();
        let mut listed: Vec<String> = ASSETS.iter().map(|a| a.path.to_string()).collect();
        listed.sort();
        assert_eq!(on_disk, listed);
        for a in ASSETS {
            assert!(
                content_type(a.path).is_some(),
                "{} has no content type",
                a.path
            );
        }
    }

    #[test]
    fn documents_link_only_embedded_files() {
        for view in [View::Dcos, View::Mesos, View::Marathon] {
            let doc = document(view);
            assert!(doc.contains(&format!("<title>{}</title>", view.title())));
            for link in doc
                .split("href=\"")
                .skip(1)
                .chain(doc.split("src=\"").skip(1))
            {
                let target = link.split('"').next().unwrap();
                assert!(asset(target).is_some(), "{target} is not served");
            }
        }
        assert!(document(View::Dcos).contains("DC/OS"));
    }

    #[test]
    fn only_asset_shaped_paths_are_looked_up() {
        assert!(safe_relative("assets/js/main.js"));
        for bad in [
            "assets/../Cargo.toml",
            "assets//x.js",
            "assets/./x.js",
            "/etc/passwd",
            "assets/a%2e.js",
            "x/assets/a.js",
        ] {
            assert!(!safe_relative(bad), "{bad}");
        }
        assert!(asset("assets/nothing.js").is_none());
        assert!(response(View::Mesos, "/assets/../Cargo.toml", None).is_none());
        assert!(response(View::Mesos, "/master/state", None).is_none());
        let doc = response(View::Marathon, "/", None).unwrap();
        assert!(doc.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("script-src 'self'"));
        assert!(asset("assets/js/main.rs").is_none());
    }

    #[test]
    fn an_unchanged_file_is_a_304_and_a_changed_one_the_file() {
        let first = response(View::Dcos, "/assets/js/main.js", None).unwrap();
        assert_eq!(first.status(), StatusCode::OK);
        assert_eq!(
            first.headers()[CONTENT_LENGTH].to_str().unwrap(),
            first.body().len().to_string()
        );
        let etag = first.headers()[ETAG].clone();
        let again = response(View::Dcos, "/assets/js/main.js", Some(&etag)).unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert!(again.body().is_empty());
        let other = response(View::Dcos, "/assets/js/dom.js", Some(&etag)).unwrap();
        assert_eq!(other.status(), StatusCode::OK);
        // Each view's document is its own.
        let dcos = response(View::Dcos, "/", None).unwrap();
        let mesos = response(View::Mesos, "/", Some(&dcos.headers()[ETAG])).unwrap();
        assert_eq!(mesos.status(), StatusCode::OK);
    }
}
