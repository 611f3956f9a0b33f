//! Network namespaces for tests: a bare one per test ([`Netns`]), a listener held in one
//! ([`Held`]), code and connections run inside any namespace ([`in_netns`]), and the sweep
//! that removes what dead test processes left behind.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;
use std::time::Duration;

use nix::sched::CloneFlags;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::http::HttpResponse;
use crate::output_within;

/// The prefix of every [`Netns`] name: `dcostest-<pid>-<n>-<tag>`.
const NETNS_PREFIX: &str = "dcostest-";
/// How long a command run in a namespace may take.
const EXEC_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A network namespace for one test, with only a loopback interface (up), removed on drop
/// (also when the test panics) together with every process left in it.
#[derive(Debug)]
pub struct Netns {
    /// The namespace's name, as `ip netns` knows it.
    pub name: String,
}

impl Netns {
    /// Creates a namespace; `tag` (a few letters) makes its name readable.
    ///
    /// # Panics
    ///
    /// When it cannot be created (the tests must run as root).
    pub fn new(tag: &str) -> Netns {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        sweep_once();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{NETNS_PREFIX}{}-{n}-{tag}", std::process::id());
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .expect("run `ip` (Debian package iproute2)");
        assert!(
            out.status.success(),
            "ip netns add {name} (the tests run as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ns = Netns { name };
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// Runs `argv` inside the namespace and returns its output, whatever its exit status.
    ///
    /// # Panics
    ///
    /// When it cannot be started or runs longer than 30 s.
    pub fn output(&self, argv: &[&str]) -> Output {
        output_within(self.command(argv[0]).args(&argv[1..]), EXEC_TIMEOUT)
            .unwrap_or_else(|e| panic!("{argv:?} in {}: {e}", self.name))
    }

    /// Runs `argv` inside the namespace, which must succeed.
    ///
    /// # Panics
    ///
    /// When it fails, cannot be started or runs longer than 30 s.
    pub fn exec(&self, argv: &[&str]) -> Output {
        let out = self.output(argv);
        assert!(
            out.status.success(),
            "{argv:?} in {} failed: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Holds `addr:port` (`proto` is `tcp` or `udp`) with a Python process inside the
    /// namespace; returns once the socket is bound.
    ///
    /// # Panics
    ///
    /// When the listener cannot bind.
    pub fn hold(&self, proto: &str, addr: &str, port: u16) -> Held {
        let (kind, listen) = match proto {
            "tcp" => ("SOCK_STREAM", "s.listen(1);"),
            "udp" => ("SOCK_DGRAM", ""),
            other => panic!("unknown protocol {other:?}: tcp or udp"),
        };
        // The holder exits by itself after a while, should even this guard be lost.
        let script = format!(
            "import socket,time;s=socket.socket(socket.AF_INET,socket.{kind});s.bind(('{addr}',{port}));{listen}print('ready',flush=True);time.sleep(120)"
        );
        let mut child = self
            .command("python3")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run python3");
        let mut line = String::new();
        if let Some(out) = child.stdout.as_mut() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        let held = Held { child };
        assert_eq!(
            line.trim(),
            "ready",
            "python3 could not bind {addr}:{port}/{proto} in {}",
            self.name
        );
        held
    }

    /// The pids of every process inside the namespace.
    pub fn pids(&self) -> Vec<u32> {
        netns_pids(&self.name)
    }

    /// Opens a TCP connection to `addr` from inside the namespace.
    pub fn connect(&self, addr: SocketAddr) -> std::io::Result<TcpStream> {
        in_netns(&self.name, || {
            TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
        })?
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        remove_netns(&self.name);
    }
}

/// A socket held by a process inside a namespace; the process is killed on drop.
#[derive(Debug)]
pub struct Held {
    child: Child,
}

impl Held {
    /// The holding process's pid, as `ss -p` and the preflight report name it.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `f` on a thread that has entered the network namespace `netns`; sockets `f` creates
/// live in that namespace (and keep working once returned to any thread).
pub fn in_netns<T: Send>(netns: &str, f: impl FnOnce() -> T + Send) -> std::io::Result<T> {
    let file = fs_err::File::open(Path::new("/run/netns").join(netns))?;
    std::thread::scope(|s| {
        // setns(CLONE_NEWNET) moves only the calling thread, and this thread ends with `f`.
        s.spawn(move || {
            nix::sched::setns(file.file(), CloneFlags::CLONE_NEWNET)
                .map_err(std::io::Error::from)?;
            Ok(f())
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Sends `GET path` to `addr` from inside `netns`.
pub fn http_get(netns: &str, addr: SocketAddr, path: &str) -> std::io::Result<HttpResponse> {
    let stream = in_netns(netns, || TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT))??;
    crate::http::get(stream, &addr.to_string(), path)
}

/// Every network namespace `ip netns` lists, by name.
pub fn netns_list() -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output();
    out.map(|o| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .collect()
    })
    .unwrap_or_default()
}

/// The pids of every process inside the namespace `name` (none if it does not exist).
pub fn netns_pids(name: &str) -> Vec<u32> {
    Command::new("ip")
        .args(["netns", "pids", name])
        .stderr(Stdio::null())
        .output()
        .map(|out| {
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Kills every process in a namespace and deletes it. Idempotent.
pub(crate) fn remove_netns(name: &str) {
    for pid in netns_pids(name) {
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
    }
    let _ = Command::new("ip")
        .args(["netns", "del", name])
        .stderr(Stdio::null())
        .status();
}

/// The pid of the test process that owns a testkit name: `t<pid>-..` (a cluster),
/// `dcos-t<pid>-..` (a cluster node's namespace) or `dcostest-<pid>-..` ([`Netns`]).
pub(crate) fn owner_pid(name: &str) -> Option<u32> {
    let rest = name
        .strip_prefix(NETNS_PREFIX)
        .or_else(|| name.strip_prefix("dcos-t"))
        .or_else(|| name.strip_prefix('t'))?;
    // `<pid>-<counter>`, then the end, `-<node>` or `.<tempdir suffix>`.
    let (pid, rest) = rest.split_once('-')?;
    let counter = rest.split(['-', '.']).next()?;
    if counter.is_empty() || !counter.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// Whether what `owner` made is left over: its process is gone, or it is this process, which
/// has made nothing yet when the sweep runs (the pid was reused).
pub(crate) fn abandoned(owner: u32) -> bool {
    owner == std::process::id() || !dcos_node::cluster::pid_alive(owner)
}

/// Once per process, before it makes anything: removes the clusters and namespaces of test
/// processes that died without tearing down (killed at a timeout).
pub(crate) fn sweep_once() {
    static SWEEP: Once = Once::new();
    SWEEP.call_once(|| {
        crate::cluster::sweep_state_dirs();
        for ns in netns_list() {
            if owner_pid(&ns).is_some_and(abandoned) {
                remove_netns(&ns);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_reads_every_testkit_name() {
        assert_eq!(owner_pid("t123-4"), Some(123));
        assert_eq!(owner_pid("t123-4.Xy9z"), Some(123));
        assert_eq!(owner_pid("dcos-t123-4-agent-1"), Some(123));
        assert_eq!(owner_pid("dcostest-77-0-pf"), Some(77));
        assert_eq!(owner_pid("dcos-mycluster-master-1"), None);
        assert_eq!(owner_pid("tiny-1"), None);
        assert_eq!(owner_pid("t5-x-master-1"), None);
    }

    #[test]
    fn a_netns_isolates_its_loopback_and_is_removed_on_drop() {
        let ns = Netns::new("tk");
        let name = ns.name.clone();
        assert!(netns_list().contains(&name));
        let held = ns.hold("tcp", "127.0.0.1", 15055);
        assert!(ns.connect("127.0.0.1:15055".parse().unwrap()).is_ok());
        // Each namespace has its own loopback: the other one has nothing on 15055.
        let other = Netns::new("tk2");
        assert!(other.connect("127.0.0.1:15055".parse().unwrap()).is_err());
        let pid = held.pid();
        assert_eq!(ns.pids(), vec![pid]);
        drop(ns);
        assert!(!netns_list().contains(&name));
        // The holder was killed with its namespace (the guard reaps it).
        drop(held);
        assert!(!dcos_node::cluster::pid_alive(pid));
    }
}
