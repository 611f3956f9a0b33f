//! RecordIO framing, as the Mesos HTTP APIs stream events: `<length>\n<record>`.

use bytes::{Buf, Bytes, BytesMut};

/// Frames one record.
pub fn encode(record: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(record.len() + 8);
    out.extend_from_slice(record.len().to_string().as_bytes());
    out.extend_from_slice(b"\n");
    out.extend_from_slice(record);
    out.freeze()
}

/// A framing error.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The length prefix is not a decimal number.
    #[error("invalid RecordIO length prefix {0:?}")]
    BadLength(String),
    /// A record is larger than the decoder accepts.
    #[error("RecordIO record of {0} bytes exceeds the limit")]
    TooLarge(usize),
}

/// An incremental decoder: feed bytes as they arrive, take whole records out.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: BytesMut,
    want: Option<usize>,
}

/// The largest record a decoder accepts (a state snapshot can be large, not unbounded).
pub const MAX_RECORD: usize = 64 << 20;

impl Decoder {
    /// A new decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes.
    pub fn feed(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next whole record, if one has arrived.
    pub fn next_record(&mut self) -> Result<Option<Bytes>, Error> {
        loop {
            match self.want {
                None => {
                    let Some(nl) = self.buf.iter().position(|&b| b == b'\n') else {
                        if self.buf.len() > 20 {
                            return Err(Error::BadLength(
                                String::from_utf8_lossy(&self.buf[..20]).into(),
                            ));
                        }
                        return Ok(None);
                    };
                    let text = String::from_utf8_lossy(&self.buf[..nl]).trim().to_string();
                    let len: usize = text.parse().map_err(|_| Error::BadLength(text.clone()))?;
                    if len > MAX_RECORD {
                        return Err(Error::TooLarge(len));
                    }
                    self.buf.advance(nl + 1);
                    self.want = Some(len);
                }
                Some(len) => {
                    if self.buf.len() < len {
                        return Ok(None);
                    }
                    self.want = None;
                    return Ok(Some(self.buf.split_to(len).freeze()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        // Any records, cut into any chunks, come out whole and in order.
        #[test]
        fn records_round_trip_in_any_chunks(
            records in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8),
            cuts in proptest::collection::vec(1usize..64, 0..40),
        ) {
            let stream: Vec<u8> = records.iter().flat_map(|r| encode(r).to_vec()).collect();
            let mut d = Decoder::new();
            let mut got = Vec::new();
            let mut rest = &stream[..];
            for cut in cuts.iter().copied().chain(std::iter::once(usize::MAX)) {
                let (chunk, tail) = rest.split_at(cut.min(rest.len()));
                rest = tail;
                d.feed(chunk);
                while let Some(r) = d.next_record().unwrap() {
                    got.push(r.to_vec());
                }
            }
            prop_assert_eq!(got, records);
        }

        // A hostile stream (any bytes) gives records or an error, never a panic, and the
        // decoder never holds more than it was fed.
        #[test]
        fn any_bytes_decode_or_fail(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..16)) {
            let mut d = Decoder::new();
            let mut fed = 0;
            'feed: for chunk in &chunks {
                fed += chunk.len();
                d.feed(chunk);
                loop {
                    match d.next_record() {
                        Ok(Some(r)) => prop_assert!(r.len() <= fed),
                        Ok(None) => break,
                        Err(_) => break 'feed,
                    }
                }
            }
        }
    }

    #[test]
    fn records_survive_any_split() {
        let mut stream = Vec::new();
        for r in [&b"{\"type\":\"HEARTBEAT\"}"[..], b"", b"x\ny"] {
            stream.extend_from_slice(&encode(r));
        }
        for cut in 0..stream.len() {
            let mut d = Decoder::new();
            let mut got = Vec::new();
            for chunk in [&stream[..cut], &stream[cut..]] {
                d.feed(chunk);
                while let Some(r) = d.next_record().unwrap() {
                    got.push(r);
                }
            }
            assert_eq!(
                got,
                vec![
                    Bytes::from_static(b"{\"type\":\"HEARTBEAT\"}"),
                    Bytes::new(),
                    Bytes::from_static(b"x\ny")
                ]
            );
        }
    }

    #[test]
    fn garbage_prefix_is_an_error() {
        let mut d = Decoder::new();
        d.feed(b"abc\n{}");
        assert!(matches!(d.next_record(), Err(Error::BadLength(_))));
        let mut d = Decoder::new();
        d.feed(b"999999999999\n");
        assert!(matches!(d.next_record(), Err(Error::TooLarge(_))));
    }
}
