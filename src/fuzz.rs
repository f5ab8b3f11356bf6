//! Entry points for the fuzz targets in `fuzz/` (cargo fuzz): each takes arbitrary bytes,
//! drives one parser of input nobody here controls, and panics only when a property breaks —
//! a panic, a hang or unbounded memory anywhere below is a finding. Not part of the tool's
//! interface (hidden from the docs).

use std::path::Path;

/// The HTTP/1.1 response reader: head and body framing (chunked in two reads split where the
/// input's first byte says). The body decoded can never be longer than the input.
pub fn http_response(data: &[u8]) {
    let split = data.first().copied().unwrap_or(0) as usize;
    let rest = data.get(1..).unwrap_or_default();
    if let Ok(body) = crate::client::wire::read_answer(rest, split) {
        assert!(body.len() <= rest.len(), "decoded more than was read");
    }
}

/// The SSE splitter over input split in two reads, and the event classifiers: on every event
/// serde_json accepts as JSON, the hot-path scan (when it decides, its stream template carried
/// from event to event) agrees with the full parser, and so do the Responses and Messages
/// streams' bytes-only readings.
pub fn sse(data: &[u8]) {
    let split = (data.first().copied().unwrap_or(0) as usize).min(data.len());
    let (a, b) = data.split_at(split);
    let mut s = crate::client::sse::SseSplitter::new();
    // One stream: the scan's template carries from event to event, as in a request.
    let mut template = None;
    let mut check = |event: &[u8]| {
        if event != b"[DONE]"
            && serde_json::from_slice::<serde_json::Value>(event).is_ok()
            && !has_duplicate_keys(event)
        {
            let (scan, full) = crate::client::classify_both(event, &mut template);
            if let Some(scan) = scan {
                assert_eq!(
                    scan,
                    full,
                    "the scan and serde disagree on {:?}",
                    String::from_utf8_lossy(event)
                );
            }
            // The same event read as a Responses stream's: the bytes-only reading agrees too.
            if let (Some(fast), full) = crate::client::responses::fast_and_full(event) {
                assert_eq!(
                    fast,
                    full,
                    "the Responses fast path and serde disagree on {:?}",
                    String::from_utf8_lossy(event)
                );
            }
            if let (Some(fast), full) = crate::client::messages::fast_and_full(event) {
                assert_eq!(
                    fast,
                    full,
                    "the Messages fast path and serde disagree on {:?}",
                    String::from_utf8_lossy(event)
                );
            }
        }
        true
    };
    s.feed(a, &mut check);
    s.feed(b, &mut check);
}

/// True when some object in `json` names a key twice. RFC 8259 leaves what such an object
/// means to its reader ("unpredictable"): `serde_json::Value` keeps the last, a derived struct
/// refuses it, a byte scan sees the first. No reading is the right one, so the readings are
/// compared only on JSON whose names are unique.
fn has_duplicate_keys(json: &[u8]) -> bool {
    use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
    struct Dup(bool);
    impl<'de> Deserialize<'de> for Dup {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(Walk)
        }
    }
    struct Walk;
    impl<'de> Visitor<'de> for Walk {
        type Value = Dup;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Dup, A::Error> {
            let (mut seen, mut dup) = (std::collections::HashSet::new(), false);
            while let Some(k) = m.next_key::<String>()? {
                dup |= !seen.insert(k);
                dup |= m.next_value::<Dup>()?.0;
            }
            Ok(Dup(dup))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Dup, A::Error> {
            let mut dup = false;
            while let Some(x) = s.next_element::<Dup>()? {
                dup |= x.0;
            }
            Ok(Dup(dup))
        }
        fn visit_bool<E>(self, _: bool) -> Result<Dup, E> {
            Ok(Dup(false))
        }
        fn visit_i64<E>(self, _: i64) -> Result<Dup, E> {
            Ok(Dup(false))
        }
        fn visit_u64<E>(self, _: u64) -> Result<Dup, E> {
            Ok(Dup(false))
        }
        fn visit_f64<E>(self, _: f64) -> Result<Dup, E> {
            Ok(Dup(false))
        }
        fn visit_str<E>(self, _: &str) -> Result<Dup, E> {
            Ok(Dup(false))
        }
        fn visit_unit<E>(self) -> Result<Dup, E> {
            Ok(Dup(false))
        }
    }
    serde_json::from_slice::<Dup>(json).is_ok_and(|d| d.0)
}

/// The Prometheus text parser and the mapping of vLLM / SGLang / llama.cpp names.
pub fn prometheus(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut m = crate::metrics::scrape::Mapper::default();
    let t0 = std::time::Instant::now();
    if let Ok(s) = m.sample(text, t0) {
        for v in [s.kv_cache_usage, s.prefix_cache_hit_rate] {
            // Whatever the text says, a share is a number (NaN and ∞ included), never a panic.
            let _ = v.map(f64::is_finite);
        }
    }
    let _ = m.sample(text, t0 + std::time::Duration::from_secs(1));
}

/// The experiment loader: `data` as a parent file that a child `extends`, through layering
/// and validation. Every problem must be an error with a message, never a panic.
pub fn experiment(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let parent = dir.path().join("base.yaml");
    let child = dir.path().join("exp.yaml");
    if std::fs::write(&parent, text).is_err()
        || std::fs::write(&child, "extends: base.yaml\nname: fuzz\n").is_err()
    {
        return;
    }
    let opts = crate::config::LoadOptions {
        user_config: crate::config::UserConfigSource::None,
        env: Some(Vec::new()),
        ..crate::config::LoadOptions::default()
    };
    if let Err(e) = crate::config::load(&child, &opts) {
        assert!(!e.to_string().is_empty());
    }
    // The file alone too (it may be a whole experiment).
    let _ = crate::config::load(&parent, &opts);
}

/// The JSONL prompt loader.
pub fn jsonl(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for api in [crate::config::Api::Chat, crate::config::Api::Completions] {
        if let Err(e) = crate::workload::dataset::parse_jsonl(text, "fuzz.jsonl", api, 16) {
            assert!(
                e.to_string().contains("fuzz.jsonl"),
                "the error names the file"
            );
        }
    }
}

/// `compare`'s reader of result files, ours and `vllm bench serve`'s, and the comparison of
/// whatever it read with itself.
pub fn result_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(l) = crate::results::compare::parse(Path::new("fuzz.json"), text) {
        let _ = crate::results::compare::compare(&l, &l, 0.05);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn duplicate_keys_are_found_at_any_depth() {
        assert!(super::has_duplicate_keys(
            br#"{"a":1,"b":{"c":[{"d":1,"d":2}]}}"#
        ));
        assert!(super::has_duplicate_keys(br#"{"a":1,"a":null}"#));
        assert!(!super::has_duplicate_keys(
            br#"{"a":1,"b":{"a":[{"a":1},{"a":2}]}}"#
        ));
        assert!(!super::has_duplicate_keys(br#"[1,"x",null,true,-2.5]"#));
    }
}
