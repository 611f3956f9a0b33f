//! A request's query string: repeated keys kept (dcos-log's `filter`, Marathon's `embed`
//! may come many times), escapes decoded as forms do (`+` is a space).

/// The decoded pairs of a query string, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Parses a raw query string (without `?`).
    pub fn parse(raw: Option<&str>) -> Query {
        let pairs = raw
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (decode(k), decode(v))
            })
            .collect();
        Query(pairs)
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `key`, `None` when absent or empty (as Go's `Query().Get` is read).
    pub fn non_empty(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.is_empty())
    }

    /// A flag as Marathon reads one: `true`, `1` or present without a value; `default` when
    /// absent.
    pub fn flag(&self, key: &str, default: bool) -> bool {
        match self.get(key) {
            Some(v) => v == "true" || v.is_empty() || v == "1",
            None => default,
        }
    }

    /// Every value of `key`.
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_keys_and_escapes() {
        let q = Query::parse(Some(
            "skip_prev=10&filter=_SYSTEMD_UNIT:dcos-mesos-master.service&filter=STREAM%3ASTDOUT&cursor=s%3Da%3Bi%3D1&x=a+b&bad=%zz&end=%4",
        ));
        assert_eq!(q.get("skip_prev"), Some("10"));
        assert_eq!(
            q.all("filter").collect::<Vec<_>>(),
            ["_SYSTEMD_UNIT:dcos-mesos-master.service", "STREAM:STDOUT"]
        );
        assert_eq!(q.get("cursor"), Some("s=a;i=1"));
        assert_eq!(q.get("x"), Some("a b"));
        assert_eq!(q.get("bad"), Some("%zz"));
        assert_eq!(q.get("end"), Some("%4"));
        assert_eq!(q.get("missing"), None);
        assert_eq!(Query::parse(Some("a=&b")).non_empty("a"), None);
        assert_eq!(Query::parse(None), Query::default());
    }

    #[test]
    fn flags_as_marathon_reads_them() {
        let q = Query::parse(Some("force=true&partialUpdate=false&wipe&n=1"));
        assert!(q.flag("force", false) && q.flag("wipe", false) && q.flag("n", false));
        assert!(!q.flag("partialUpdate", true));
        assert!(q.flag("absent", true) && !q.flag("absent", false));
    }
}
