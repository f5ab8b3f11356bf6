//! The pooling APIs' answers (`embeddings`, `rerank`): one JSON document per request, not a
//! stream. The request's end is the answer's last byte; there is no first token. The answer
//! is read without being kept: its items are counted as they pass (each has an `"index":`
//! key, a byte sequence no escaped string can hold) and only its first and last few KiB stay,
//! where `usage` is (vLLM writes it after `data` for embeddings, before `results` for rerank).
//! A 4096-dimension embedding batch of megabytes costs a `memchr` pass, not a parse.

use std::time::Instant;

use bytes::Bytes;
use serde::Deserialize;

use super::wire::{Flow, ResponseHead, Sink};
use super::{round_trip, status_error, Conn, Endpoint, Stamps};
use crate::metrics::event::{ErrorKind, RequestError};

impl Default for PoolSink {
    fn default() -> Self {
        Self {
            sent: Instant::now(),
            status: 0,
            not_json: None,
            head: Vec::new(),
            tail: Vec::new(),
            carry: Vec::new(),
            items: 0,
            bytes: 0,
            end: None,
        }
    }
}

/// Bytes kept from each end of an answer: where `usage` is.
const END_BYTES: usize = 8 * 1024;

/// The key every item of `data` (embeddings) and `results` (rerank) has.
const ITEM_KEY: &[u8] = b"\"index\":";

/// Reads one pooling answer: status, its two ends, its items counted on the way.
pub struct PoolSink {
    /// Just before the request was written (again, when it went out on a fresh connection).
    sent: Instant,
    status: u16,
    /// A 2xx answer that is not JSON: its content type.
    not_json: Option<String>,
    head: Vec<u8>,
    tail: Vec<u8>,
    /// The last bytes of the previous read, so an item key across two reads is seen.
    carry: Vec<u8>,
    items: u32,
    bytes: u64,
    /// The last read's time: the request's end.
    end: Option<Instant>,
}

impl Sink for PoolSink {
    fn head(&mut self, head: &ResponseHead) {
        self.status = head.status;
        let json = head.content_type.as_deref().is_none_or(|ct| {
            ct.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
        });
        if (200..300).contains(&head.status) && !json {
            self.not_json = head.content_type.clone();
        }
    }

    fn data(&mut self, bytes: &[u8], at: Instant) -> bool {
        self.end = Some(at);
        self.bytes += bytes.len() as u64;
        let room = END_BYTES.saturating_sub(self.head.len());
        self.head.extend_from_slice(&bytes[..bytes.len().min(room)]);
        if self.status_ok() {
            self.count(bytes);
        }
        keep_tail(&mut self.tail, bytes);
        // An error answer is kept only for its message.
        self.status_ok() || self.head.len() < END_BYTES
    }
}

/// `tail` becomes the last [`END_BYTES`] of everything fed so far.
fn keep_tail(tail: &mut Vec<u8>, bytes: &[u8]) {
    if bytes.len() >= END_BYTES {
        tail.clear();
        tail.extend_from_slice(&bytes[bytes.len() - END_BYTES..]);
        return;
    }
    let over = (tail.len() + bytes.len()).saturating_sub(END_BYTES);
    tail.drain(..over);
    tail.extend_from_slice(bytes);
}

impl PoolSink {
    fn status_ok(&self) -> bool {
        (200..300).contains(&self.status) && self.not_json.is_none()
    }

    /// Counts the item keys in `bytes`, with the previous read's last bytes before them.
    fn count(&mut self, bytes: &[u8]) {
        // The carry is shorter than a key, so a key found across the seam ends in `bytes`:
        // it is new, and not one `bytes` holds whole.
        let k = ITEM_KEY.len() - 1;
        let mut seam = std::mem::take(&mut self.carry);
        seam.extend_from_slice(&bytes[..bytes.len().min(k)]);
        self.items += memchr::memmem::find_iter(&seam, ITEM_KEY).count() as u32;
        self.items += memchr::memmem::find_iter(bytes, ITEM_KEY).count() as u32;
        // The last `k` bytes fed, whatever the size of the reads.
        if bytes.len() >= k {
            seam.clear();
            seam.extend_from_slice(&bytes[bytes.len() - k..]);
        }
        seam.drain(..seam.len().saturating_sub(k));
        self.carry = seam;
    }

    /// The answer's figures: the items it pooled and its prompt tokens (`usage`), or why it is
    /// not an answer.
    fn answer(&self) -> Result<(u32, Option<u32>), String> {
        let first = self.head.iter().find(|b| !b.is_ascii_whitespace());
        if first != Some(&b'{') {
            return Err(format!(
                "the answer is not a JSON object; it begins: {:?}",
                String::from_utf8_lossy(&self.head[..self.head.len().min(200)])
            ));
        }
        if self.items == 0 {
            return Err(format!(
                "the answer ({} bytes) holds no items (no `data` or `results` with an `index`)",
                self.bytes
            ));
        }
        let usage = usage_in(&self.head).or_else(|| usage_in(&self.tail));
        Ok((self.items, usage.and_then(|u| u.prompt_tokens)))
    }
}

#[derive(Deserialize)]
struct Usage {
    prompt_tokens: Option<u32>,
}

/// The `usage` object in `bytes` (the last `"usage":` key), when it is there whole.
fn usage_in(bytes: &[u8]) -> Option<Usage> {
    let at = memchr::memmem::rfind(bytes, b"\"usage\":")?;
    let rest = &bytes[at + b"\"usage\":".len()..];
    serde_json::Deserializer::from_slice(rest)
        .into_iter::<Usage>()
        .next()?
        .ok()
}

/// Sends one pooling request on `conn` and reads its answer into `r` (the request's time
/// bounds are the caller's: an answer is not a flood of events to stop between reads).
pub(super) async fn exchange(
    conn: &mut Conn,
    ep: &Endpoint,
    body: Bytes,
    r: &mut Stamps,
) -> Result<(), RequestError> {
    let request = ep.request("POST", ep.path(), "application/json", &body);
    let mut sink = PoolSink {
        sent: Instant::now(),
        ..PoolSink::default()
    };
    // Sent again on a fresh connection: its clock restarts.
    let restart = |s: &mut PoolSink| {
        *s = PoolSink {
            sent: Instant::now(),
            ..PoolSink::default()
        }
    };
    let flow = round_trip(conn, ep, &request, &mut sink, restart).await;
    r.sent = sink.sent;
    r.reads = conn.wire.reads;
    r.kernel_reads = conn.wire.kernel_reads;
    let flow = flow?;
    if !(200..300).contains(&sink.status) {
        if flow == Flow::Stopped {
            conn.wire.close();
        }
        return Err(status_error(sink.status, &sink.head));
    }
    if let Some(ct) = &sink.not_json {
        conn.wire.close();
        let mut err = RequestError::new(
            ErrorKind::Parse,
            format!(
                "HTTP {}: the answer is `{ct}`, not `application/json`; it begins: {:?}",
                sink.status,
                String::from_utf8_lossy(&sink.head[..sink.head.len().min(200)])
            ),
        );
        err.status = Some(sink.status);
        return Err(err);
    }
    let (inputs, prompt_tokens) = sink
        .answer()
        .map_err(|m| RequestError::new(ErrorKind::Parse, m))?;
    r.end = sink.end.unwrap_or_else(Instant::now);
    r.inputs = Some(inputs);
    r.usage_prompt_tokens = prompt_tokens;
    // Nothing generated: the server's count is 0, not unknown.
    r.usage_completion_tokens = Some(0);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let p = format!(
            "{}/tests/fixtures/vllm-0.32/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&p).unwrap()
    }

    fn read(pieces: &[&[u8]]) -> Result<(u32, Option<u32>), String> {
        let mut s = PoolSink::default();
        s.head(&ResponseHead {
            status: 200,
            content_type: Some("application/json".into()),
            content_encoding: None,
        });
        for p in pieces {
            assert!(s.data(p, Instant::now()));
        }
        s.answer()
    }

    #[test]
    fn vllms_answers_are_counted_in_any_split_and_their_usage_found_at_either_end() {
        // Embeddings: `usage` last; rerank: `usage` before `results`.
        for (name, items, tokens) in [("embeddings.json", 2, 6), ("rerank.json", 2, 9)] {
            let body = fixture(name);
            for cut in 0..body.len() {
                let (a, b) = body.split_at(cut);
                assert_eq!(
                    read(&[a, b]),
                    Ok((items, Some(tokens))),
                    "{name} cut at {cut}"
                );
            }
            let bytes: Vec<&[u8]> = body.chunks(3).collect();
            assert_eq!(
                read(&bytes),
                Ok((items, Some(tokens))),
                "{name} in 3-byte reads"
            );
        }
    }

    #[test]
    fn a_big_answer_keeps_only_its_ends_and_its_usage_is_still_found() {
        let item = r#"{"index":0,"object":"embedding","embedding":[0.1,0.2,0.3]},"#;
        let mut body = String::from(r#"{"id":"embd-1","object":"list","data":["#);
        for _ in 0..10_000 {
            body.push_str(item);
        }
        body.pop();
        body.push_str(r#"],"usage":{"prompt_tokens":640000,"total_tokens":640000}}"#);
        let mut s = PoolSink {
            status: 200,
            ..PoolSink::default()
        };
        for c in body.as_bytes().chunks(4096) {
            s.data(c, Instant::now());
        }
        assert!(s.head.len() <= END_BYTES && s.tail.len() <= END_BYTES);
        assert_eq!(s.answer(), Ok((10_000, Some(640_000))));
    }

    #[test]
    fn what_is_not_an_answer_says_what_it_is() {
        let e = read(&[b"<html>502</html>"]).unwrap_err();
        assert!(
            e.contains("not a JSON object") && e.contains("<html>"),
            "{e}"
        );
        let e = read(&[br#"{"data":[],"usage":{"prompt_tokens":0}}"#]).unwrap_err();
        assert!(e.contains("no items"), "{e}");
        // An index inside a text is escaped: not an item.
        let text = br#"{"results":[{"index":0,"document":{"text":"say \"index\": 3"}}]}"#;
        assert_eq!(read(&[text]), Ok((1, None)));
    }
}
