//! In-place SSE splitter for the hot path. Bytes are scanned where they arrive (memchr on line
//! ends); only an unfinished event's tail is copied. Handles `\n` and `\r\n`, comment lines,
//! `event:`/`id:` fields (ignored), multi-line `data:` (joined with `\n`), and events split
//! across reads. eventsource-stream is not used here: it copies its buffer after every line
//! (`reference/sse-client-ceiling.md`: 13× slower with 1024-token answers).

use memchr::memchr;

#[derive(Default)]
pub struct SseSplitter {
    /// Bytes of an event not finished by the previous read.
    carry: Vec<u8>,
    /// Scratch for multi-line data.
    joined: Vec<u8>,
}

impl SseSplitter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes of an unfinished event held for the next read (bounded by the caller).
    pub fn pending(&self) -> usize {
        self.carry.len()
    }

    /// True when no partial event is pending (a stream ending here ended cleanly).
    pub fn is_empty(&self) -> bool {
        self.carry.iter().all(|b| b.is_ascii_whitespace())
    }

    /// Feeds one read; calls `on_data` with the data of every complete event, in order.
    /// `on_data` returns false to stop (e.g. at `[DONE]`); then `feed` returns false.
    pub fn feed(&mut self, bytes: &[u8], mut on_data: impl FnMut(&[u8]) -> bool) -> bool {
        if self.carry.is_empty() {
            let (consumed, go_on) = split_events(bytes, &mut self.joined, &mut on_data);
            if go_on {
                self.carry.extend_from_slice(&bytes[consumed..]);
            }
            go_on
        } else {
            self.carry.extend_from_slice(bytes);
            let carry = std::mem::take(&mut self.carry);
            let (consumed, go_on) = split_events(&carry, &mut self.joined, &mut on_data);
            self.carry = carry;
            self.carry.drain(..consumed);
            go_on
        }
    }
}

/// Splits complete events out of `buf`; returns how many bytes were consumed.
fn split_events(
    buf: &[u8],
    joined: &mut Vec<u8>,
    on_data: &mut impl FnMut(&[u8]) -> bool,
) -> (usize, bool) {
    let mut pos = 0; // start of the current line
    let mut event_start = 0;
    // The data of the current event: a single borrowed slice, or `joined` when multi-line.
    let mut data: Option<(usize, usize)> = None;
    let mut multi = false;
    while let Some(nl) = memchr(b'\n', &buf[pos..]) {
        let end = pos + nl;
        let line_end = if end > pos && buf[end - 1] == b'\r' {
            end - 1
        } else {
            end
        };
        let line = &buf[pos..line_end];
        if line.is_empty() {
            // Event boundary.
            let go_on = if multi {
                on_data(joined)
            } else if let Some((s, e)) = data {
                on_data(&buf[s..e])
            } else {
                true
            };
            data = None;
            multi = false;
            joined.clear();
            event_start = end + 1;
            if !go_on {
                return (event_start, false);
            }
        } else if line[0] != b':' {
            if let Some(rest) = line.strip_prefix(b"data") {
                let value_start = match rest.first() {
                    Some(b':') => {
                        let mut v = line_end - rest.len() + 1;
                        if buf.get(v) == Some(&b' ') && v < line_end {
                            v += 1;
                        }
                        v
                    }
                    None => line_end,
                    _ => {
                        pos = end + 1;
                        continue;
                    }
                };
                match data {
                    None => data = Some((value_start, line_end)),
                    Some((s, e)) => {
                        if !multi {
                            joined.clear();
                            joined.extend_from_slice(&buf[s..e]);
                            multi = true;
                        }
                        joined.push(b'\n');
                        joined.extend_from_slice(&buf[value_start..line_end]);
                    }
                }
            }
        }
        pos = end + 1;
    }
    (event_start, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(reads: &[&[u8]]) -> Vec<String> {
        let mut s = SseSplitter::new();
        let mut out = Vec::new();
        for r in reads {
            s.feed(r, |d| {
                out.push(String::from_utf8_lossy(d).into_owned());
                d != b"[DONE]"
            });
        }
        out
    }

    #[test]
    fn splits_lf_events_in_one_read() {
        assert_eq!(
            collect(&[b"data: {\"a\":1}\n\ndata: {\"b\":2}\n\ndata: [DONE]\n\n"]),
            vec!["{\"a\":1}", "{\"b\":2}", "[DONE]"]
        );
    }

    #[test]
    fn handles_crlf_and_mixed_line_ends() {
        assert_eq!(collect(&[b"data: x\r\n\r\ndata: y\n\r\n"]), vec!["x", "y"]);
    }

    #[test]
    fn skips_comments_and_other_fields() {
        assert_eq!(
            collect(&[b": keep-alive\n\nevent: message\nid: 7\ndata: x\n\nretry: 10\n\n"]),
            vec!["x"]
        );
    }

    #[test]
    fn joins_multi_line_data() {
        assert_eq!(collect(&[b"data: a\ndata: b\ndata:c\n\n"]), vec!["a\nb\nc"]);
    }

    #[test]
    fn reassembles_events_split_anywhere() {
        let stream: &[u8] =
            b"data: {\"first\":1}\r\n\r\n: ping\n\ndata: second\ndata: line\n\ndata: [DONE]\n\n";
        let whole = collect(&[stream]);
        for cut in 0..stream.len() {
            let (a, b) = stream.split_at(cut);
            assert_eq!(collect(&[a, b]), whole, "split at {cut}");
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(collect(&bytes), whole, "one byte per read");
    }

    #[test]
    fn stops_at_done_and_reports_leftovers() {
        let mut s = SseSplitter::new();
        let mut n = 0;
        assert!(!s.feed(b"data: [DONE]\n\ndata: after\n\n", |d| {
            n += 1;
            d != b"[DONE]"
        }));
        assert_eq!(n, 1);
        let mut s = SseSplitter::new();
        s.feed(b"data: partial", |_| true);
        assert!(!s.is_empty());
    }

    #[test]
    fn data_without_space_and_empty_data() {
        assert_eq!(
            collect(&[b"data:x\n\ndata\n\ndata: \n\n"]),
            vec!["x", "", ""]
        );
    }
}
