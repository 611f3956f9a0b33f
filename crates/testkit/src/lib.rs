//! The harness that integration tests start real dcos-rs clusters with.
//!
//! - [`cluster`]: [`Cluster::builder`] brings a cluster up with the same code as
//!   `dcos cluster up` (each node in its own network namespace on its own bridge), under a
//!   unique name and a private state dir, and tears it down in `Drop`, also when the test
//!   panics.
//! - [`netns`]: a bare network namespace for one test ([`Netns`]), a listener held in it
//!   ([`Held`]), and running code or a TCP/HTTP request inside any namespace.
//! - [`dns`]: the real `dig`, its output tidied for matching.
//! - [`http`]: `GET` over TCP or a Unix socket, enough for health endpoints.
//! - [`loopback`]: a Mesos master and agents in the test process on 127.0.0.1, for
//!   frameworks' tests that need offers and real tasks but no namespaces.
//! - [`registry`]: a real image registry (Debian's `docker-registry`) on a loopback address;
//!   [`images`]: busybox and whiteout test images built from Debian's `busybox-static`.
//! - [`eventually_async`] (async tests) and [`eventually`] (blocking tests) poll a condition
//!   until a deadline: tests never sleep on a guess.
//!
//! Everything here needs root (namespaces and bridges). A test process killed before its
//! `Drop` runs (a nextest timeout) leaves its cluster behind; the next test process that
//! starts a cluster or a namespace removes what dead test processes left.
#![warn(missing_docs)]

pub mod browser;
pub mod cluster;
pub mod dns;
pub mod http;
pub mod images;
pub mod loopback;
pub mod netns;
pub mod registry;

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use cluster::{json_request_args, Builder, Cluster, Error};
pub use dcos_node::cluster::Node;
pub use http::HttpResponse;
pub use netns::{in_netns, Held, Netns};

/// How often [`eventually`] and [`eventually_async`] ask again.
const POLL: Duration = Duration::from_millis(50);

/// Polls `f` until it returns `Some`, and returns that value; `None` once `within` has
/// passed. For waits that say more than [`eventually_async`]'s message when they fail.
pub async fn poll_until<T, F, Fut>(within: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Polls `f` until it returns `Some`, and returns that value: the one wait of async tests
/// (`eventually_async(secs(5), "the agent back", || async { .. })`).
///
/// # Panics
///
/// When `within` passes first: "timed out after {within} waiting for {what}".
pub async fn eventually_async<T, F, Fut>(within: Duration, what: &str, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    match poll_until(within, f).await {
        Some(v) => v,
        None => panic!("timed out after {within:?} waiting for {what}"),
    }
}

/// Polls `f` until it returns `Some`, and returns that value: [`eventually_async`] for
/// blocking tests (the clusters of namespaces, whose calls block).
///
/// # Panics
///
/// When `within` passes first; the message names the caller's line.
#[track_caller]
pub fn eventually<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("condition not met within {within:?}");
        }
        std::thread::sleep(POLL);
    }
}

/// Sends SIGKILL to `pid` (gone already is fine).
pub fn kill_9(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        let pid = nix::unistd::Pid::from_raw(pid);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    }
}

/// Runs a command to completion, capturing its output, killing it if it runs longer than
/// `within`.
pub fn output_within(cmd: &mut Command, within: Duration) -> std::io::Result<Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // The pipes are drained while waiting, so a chatty child cannot block on a full pipe.
    let readers = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .map(|pipe| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut buf);
            }
            buf
        })
    });
    let deadline = Instant::now() + within;
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            let _ = child.kill();
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let [stdout, stderr] = readers.map(|r| r.join().unwrap_or_default());
    if timed_out {
        return Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "{cmd:?} did not finish within {within:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                String::from_utf8_lossy(&stdout),
                String::from_utf8_lossy(&stderr)
            ),
        ));
    }
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

/// The last `lines` lines of a file (empty when it cannot be read).
fn tail(path: &std::path::Path, lines: usize) -> String {
    let text = fs_err::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eventually_returns_the_first_value() {
        let mut calls = 0;
        let v = eventually(Duration::from_secs(5), || {
            calls += 1;
            (calls == 3).then_some(calls)
        });
        assert_eq!(v, 3);
    }

    #[test]
    #[should_panic(expected = "condition not met within")]
    fn eventually_panics_at_the_deadline() {
        eventually(Duration::from_millis(100), || None::<()>);
    }

    #[tokio::test]
    async fn eventually_async_returns_the_first_value() {
        let mut calls = 0;
        let v = eventually_async(Duration::from_secs(5), "the third call", || {
            calls += 1;
            let n = calls;
            async move { (n == 3).then_some(n) }
        })
        .await;
        assert_eq!(v, 3);
    }

    #[tokio::test]
    #[should_panic(expected = "waiting for nothing that comes")]
    async fn eventually_async_panics_at_the_deadline_naming_what() {
        eventually_async(Duration::from_millis(100), "nothing that comes", || async {
            None::<()>
        })
        .await;
    }

    #[tokio::test]
    async fn poll_until_gives_up_with_none() {
        let started = Instant::now();
        assert_eq!(
            poll_until(Duration::from_millis(100), || async { None::<()> }).await,
            None
        );
        assert!(started.elapsed() >= Duration::from_millis(100));
    }

    #[test]
    fn output_within_captures_and_kills_at_the_deadline() {
        let out = output_within(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");

        let started = Instant::now();
        let err = output_within(
            Command::new("sh").args(["-c", "echo begun; exec sleep 30"]),
            Duration::from_millis(300),
        )
        .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert!(err.to_string().contains("begun"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
