//! How the Mesos agent hands a container's StatsD datagrams to the node's collector.
//!
//! As dcos-metrics' Mesos module does, the agent opens one UDP socket per container (the
//! task's `STATSD_UDP_HOST`/`STATSD_UDP_PORT`) and forwards what arrives there to the local
//! collector (`127.0.0.1:8124`), saying whose it is. The module spoke Avro over TCP; this is
//! one UDP datagram per received datagram, so a slow collector never holds the agent up
//! (a datagram that cannot be sent at once is dropped):
//!
//! ```text
//! dcos-statsd/1 TAB <container_id> TAB <executor_id> TAB <framework_id> LF <the task's datagram>
//! ```
//!
//! Ids are at most [`MAX_ID`] bytes without control characters; the container id is
//! required, the others may be empty.

/// The first field of every datagram.
pub const MAGIC: &str = "dcos-statsd/1";
/// Bytes of an id at most.
pub const MAX_ID: usize = 255;
/// Bytes of a task's datagram the agent forwards at most (larger ones are dropped).
pub const MAX_PAYLOAD: usize = 16 * 1024;
/// Bytes of a relayed datagram at most.
pub const MAX_DATAGRAM: usize = MAGIC.len() + 4 + 3 * MAX_ID + MAX_PAYLOAD;
/// Where the collector listens by default (as dcos-metrics' collector, on the node's
/// loopback).
pub const DEFAULT_COLLECTOR: std::net::SocketAddr =
    std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8124);

/// Whose datagram it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin<'a> {
    /// The container (required).
    pub container_id: &'a str,
    /// Its executor.
    pub executor_id: &'a str,
    /// Its framework.
    pub framework_id: &'a str,
}

fn valid_id(id: &str) -> bool {
    id.len() <= MAX_ID && !id.chars().any(char::is_control)
}

impl Origin<'_> {
    /// Whether every id can be framed.
    pub fn is_valid(&self) -> bool {
        !self.container_id.is_empty()
            && valid_id(self.container_id)
            && valid_id(self.executor_id)
            && valid_id(self.framework_id)
    }

    /// The header line of this origin's datagrams, or None if an id cannot be framed.
    pub fn header(&self) -> Option<Vec<u8>> {
        self.is_valid().then(|| {
            format!(
                "{MAGIC}\t{}\t{}\t{}\n",
                self.container_id, self.executor_id, self.framework_id
            )
            .into_bytes()
        })
    }
}

/// The origin and payload of a relayed datagram; None if it is not one.
pub fn parse(datagram: &[u8]) -> Option<(Origin<'_>, &[u8])> {
    if datagram.len() > MAX_DATAGRAM {
        return None;
    }
    let end = datagram.iter().position(|b| *b == b'\n')?;
    let header = std::str::from_utf8(&datagram[..end]).ok()?;
    let mut fields = header.split('\t');
    if fields.next()? != MAGIC {
        return None;
    }
    let origin = Origin {
        container_id: fields.next()?,
        executor_id: fields.next()?,
        framework_id: fields.next()?,
    };
    if fields.next().is_some() || !origin.is_valid() {
        return None;
    }
    Some((origin, &datagram[end + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_framed_datagram_reads_back() {
        let origin = Origin {
            container_id: "c1",
            executor_id: "app.1",
            framework_id: "fw-0000",
        };
        let mut datagram = origin.header().unwrap();
        datagram.extend_from_slice(b"m:1|g\nn:2|c");
        let (got, payload) = parse(&datagram).unwrap();
        assert_eq!(got, origin);
        assert_eq!(payload, b"m:1|g\nn:2|c");
    }

    #[test]
    fn ids_that_cannot_be_framed_are_refused_both_ways() {
        let bad = Origin {
            container_id: "c\t1",
            executor_id: "",
            framework_id: "",
        };
        assert_eq!(bad.header(), None);
        let empty = Origin {
            container_id: "",
            ..bad
        };
        assert_eq!(empty.header(), None);
        for datagram in [
            &b""[..],
            b"no newline",
            b"other/1\tc\te\tf\nm:1|g",
            b"dcos-statsd/1\tc\te\nm:1|g",
            b"dcos-statsd/1\tc\te\tf\tx\nm:1|g",
            b"dcos-statsd/1\t\te\tf\nm:1|g",
            b"dcos-statsd/1\t\xff\te\tf\nm:1|g",
        ] {
            assert_eq!(
                parse(datagram),
                None,
                "{:?}",
                String::from_utf8_lossy(datagram)
            );
        }
        let long = format!("{MAGIC}\t{}\t\t\n", "c".repeat(MAX_ID + 1));
        assert_eq!(parse(long.as_bytes()), None);
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_parse_without_panicking(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = parse(&bytes);
            let mut framed = b"dcos-statsd/1\tc\te\tf\n".to_vec();
            framed.extend_from_slice(&bytes);
            proptest::prop_assert!(parse(&framed).is_some());
        }
    }
}
