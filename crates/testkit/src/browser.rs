//! A real browser for the web UI's tests and benchmark: Debian's headless `chromium` driven
//! through `chromedriver` over the W3C WebDriver protocol (its requests made with `curl`, as
//! the tests make theirs). Lookups retry until a deadline, because the UI redraws live.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The W3C key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How long a lookup waits for the UI by default.
pub const WAIT: Duration = Duration::from_secs(20);

/// WebDriver's key code of Tab.
pub const TAB: &str = "\u{E004}";
/// WebDriver's key code of Enter.
pub const ENTER: &str = "\u{E007}";

/// One headless chromium session; closed (and its driver and browser processes killed) when
/// dropped.
pub struct Browser {
    /// Held for its drop, which kills the driver's process group.
    _driver: Driver,
    session: String,
    shots: PathBuf,
    _profile: tempfile::TempDir,
}

/// A WebDriver refusal: its `error` code and message.
#[derive(Debug)]
pub struct Refusal {
    /// WebDriver's error code (`no such element`, `stale element reference`, ...).
    pub error: String,
    /// The driver's explanation.
    pub message: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn http(method: &str, url: &str, body: Option<&Value>) -> Result<Value, String> {
    let mut cmd = Command::new("curl");
    // Longer than any script the pages are given (a minute at most).
    cmd.args(["-sS", "--max-time", "90", "-X", method, url]);
    if body.is_some() {
        cmd.args([
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            "@-",
        ]);
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("run curl: {e}"))?;
    if let Some(body) = body {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("curl's stdin");
        stdin
            .write_all(body.to_string().as_bytes())
            .map_err(|e| e.to_string())?;
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("{e}: {:?}", out.stdout))
}

/// chromedriver in a process group of its own, with the chromium it starts: killed whole
/// when dropped (also when a test panics half-way), so no browser outlives its test.
struct Driver {
    child: Child,
    base: String,
}

impl Driver {
    /// chromedriver on a free port, ready. The port is free when chosen, not when bound:
    /// should another process take it first, chromedriver exits and another port is tried.
    fn start() -> Driver {
        use std::os::unix::process::CommandExt;
        for _ in 0..5 {
            let port = free_port();
            let child = Command::new("chromedriver")
                .arg(format!("--port={port}"))
                .process_group(0)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start chromedriver");
            let mut driver = Driver {
                child,
                base: format!("http://127.0.0.1:{port}"),
            };
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if matches!(driver.child.try_wait(), Ok(Some(_))) {
                    break;
                }
                let status = http("GET", &format!("{}/status", driver.base), None);
                if status.is_ok_and(|s| s["value"]["ready"] == true) {
                    return driver;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        panic!("chromedriver did not start on any of 5 ports");
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

impl Browser {
    /// Starts chromium headless; screenshots go to `shots` (where the screenshots of
    /// earlier runs' failures are removed, so none misleads).
    pub fn start(shots: PathBuf) -> Browser {
        std::fs::create_dir_all(&shots).expect("the screenshots' directory");
        for old in std::fs::read_dir(&shots).into_iter().flatten().flatten() {
            if old.file_name().to_string_lossy().starts_with("failed-") {
                let _ = std::fs::remove_file(old.path());
            }
        }
        for tool in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
            assert!(
                std::path::Path::new(tool).is_file(),
                "{tool} is missing: scripts/install-deps installs chromium and chromium-driver"
            );
        }
        let driver = Driver::start();
        let base = driver.base.clone();
        let profile = tempfile::tempdir().expect("a browser profile");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                // Root in a container-like machine: chromium's own sandbox needs user
                // namespaces it may not have; the pages it opens are the cluster's.
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1400,1000",
                         format!("--user-data-dir={}", profile.path().display())],
            },
        }}});
        let created =
            http("POST", &format!("{base}/session"), Some(&caps)).expect("a WebDriver session");
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_string();
        Browser {
            _driver: driver,
            session: format!("{base}/session/{session}"),
            shots,
            _profile: profile,
        }
    }

    /// A WebDriver command: its `value`, or the driver's refusal.
    pub fn command(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, Refusal> {
        let body = body.or_else(|| (method == "POST").then(|| json!({})));
        let answer =
            http(method, &format!("{}{path}", self.session), body.as_ref()).map_err(|e| {
                Refusal {
                    error: "transport".into(),
                    message: e,
                }
            })?;
        let value = answer["value"].clone();
        match value["error"].as_str() {
            Some(error) => Err(Refusal {
                error: error.to_string(),
                message: value["message"].as_str().unwrap_or("").to_string(),
            }),
            None => Ok(value),
        }
    }

    fn must(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.command(method, path, body)
            .unwrap_or_else(|r| panic!("WebDriver {method} {path}: {}: {}", r.error, r.message))
    }

    /// Opens `url`.
    pub fn goto(&self, url: &str) {
        self.must("POST", "/url", Some(json!({"url": url})));
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page.
    pub fn script(&self, script: &str, args: Value) -> Value {
        self.must(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
    }

    /// The first element matching `css` now, if any.
    pub fn find(&self, css: &str) -> Option<String> {
        self.command(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        )
        .ok()
        .and_then(|v| v[ELEMENT].as_str().map(str::to_string))
    }

    /// Waits until `f` gives a value, retrying what the live redraws make stale.
    pub fn until<T>(&self, what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + within;
        loop {
            if let Some(v) = f() {
                return v;
            }
            if Instant::now() > deadline {
                self.screenshot(&format!("failed-{}", slug(what)));
                let text = self.script(
                    "return (document.querySelector('main') || document.body).innerText",
                    json!([]),
                );
                panic!(
                    "timed out waiting for {what}; the page shows:\n{}",
                    text.as_str().unwrap_or("")
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The text of the first element matching `css` once `ok` holds for it.
    pub fn text_when(&self, css: &str, within: Duration, ok: impl Fn(&str) -> bool) -> String {
        self.until(css, within, || {
            let el = self.find(css)?;
            let text = self
                .command("GET", &format!("/element/{el}/text"), None)
                .ok()?;
            let text = text.as_str()?.to_string();
            ok(&text).then_some(text)
        })
    }

    /// Clicks the first element matching `css` (waiting for it; retried if the page redrew
    /// it between the lookup and the click).
    pub fn click(&self, css: &str) {
        self.until(&format!("click {css}"), WAIT, || {
            let el = self.find(css)?;
            self.command("POST", &format!("/element/{el}/click"), None)
                .ok()
        });
    }

    /// Clicks the button or link whose text is `text`.
    pub fn click_text(&self, text: &str) {
        self.until(&format!("click {text:?}"), WAIT, || {
            let el = self
                .command(
                    "POST",
                    "/element",
                    Some(json!({"using": "xpath", "value": format!(
                        "//*[(self::button or self::a) and normalize-space()='{text}']")})),
                )
                .ok()?;
            let el = el[ELEMENT].as_str()?.to_string();
            self.command("POST", &format!("/element/{el}/click"), None)
                .ok()
        });
    }

    /// The form control labelled `label` (by its `<label for>`).
    pub fn labelled(&self, label: &str) -> String {
        self.until(&format!("the field {label:?}"), WAIT, || {
            let el = self.script(
                "const l = [...document.querySelectorAll('label')]\
                   .find((l) => l.textContent.trim().replace(/\\s*\\*$/, '') === arguments[0]);\
                 return l && l.control ? l.control : null;",
                json!([label]),
            );
            el[ELEMENT].as_str().map(str::to_string)
        })
    }

    /// Replaces the value of the field labelled `label` with `text`, typed as a user would.
    pub fn fill(&self, label: &str, text: &str) {
        let el = self.labelled(label);
        self.clear(&el);
        self.keys(&el, text);
    }

    /// Empties the field `el`.
    pub fn clear(&self, el: &str) {
        self.must("POST", &format!("/element/{el}/clear"), None);
    }

    /// The first element matching `css`, waiting for it.
    pub fn wait_for(&self, css: &str) -> String {
        self.until(css, WAIT, || self.find(css))
    }

    /// Types `keys` into element `el`.
    pub fn keys(&self, el: &str, keys: &str) {
        self.must(
            "POST",
            &format!("/element/{el}/value"),
            Some(json!({"text": keys})),
        );
    }

    /// An attribute (or property) of the first element matching `css`.
    pub fn attribute(&self, css: &str, name: &str) -> String {
        self.until(&format!("{css}[{name}]"), WAIT, || {
            let el = self.find(css)?;
            let v = self
                .command("GET", &format!("/element/{el}/property/{name}"), None)
                .ok()?;
            v.as_str().map(str::to_string)
        })
    }

    /// Writes a screenshot of the page as `<name>.png`.
    pub fn screenshot(&self, name: &str) {
        use base64::Engine;
        if let Ok(png) = self.command("GET", "/screenshot", None) {
            if let Some(png) = png
                .as_str()
                .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
            {
                let _ = std::fs::write(self.shots.join(format!("{name}.png")), png);
            }
        }
    }

    /// The JavaScript errors the browser logged since the last call (exceptions and
    /// `console.error`; failed requests are the network's, reported by the pages).
    pub fn javascript_errors(&self) -> Vec<String> {
        let logs = self.must("POST", "/se/log", Some(json!({"type": "browser"})));
        logs.as_array()
            .into_iter()
            .flatten()
            .filter(|l| l["level"] == "SEVERE" && l["source"] != "network")
            .map(|l| l["message"].as_str().unwrap_or("").to_string())
            .collect()
    }
}

fn slug(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(60)
        .collect()
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends the session (chromium quits); the driver's group is killed after it anyway.
        let _ = self.command("DELETE", "", None);
    }
}
