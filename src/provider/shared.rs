//! What the providers' API clients share: tolerant decoding of an answer's fields (a field of
//! the wrong shape reads as absent, a list keeps the elements it can read) and the
//! percent-encoding of a path segment or query value, and the check of an answer against the
//! provider's document (`Drift`: the first difference said once, never a value).

use std::sync::Mutex;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

/// A field of the wrong shape reads as absent (a strict check reports it as drift).
pub fn lenient<'de, D: Deserializer<'de>, T: DeserializeOwned>(
    d: D,
) -> Result<Option<T>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(serde_json::from_value(v).ok())
}

/// Lists whose elements may be of the wrong shape: those are left out.
pub fn lenient_list<'de, D: Deserializer<'de>, T: DeserializeOwned>(
    d: D,
) -> Result<Vec<T>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(match v {
        serde_json::Value::Array(a) => a
            .into_iter()
            .filter_map(|x| serde_json::from_value(x).ok())
            .collect(),
        _ => Vec::new(),
    })
}

/// Names (RunPod) and labels (Vast) of what this process rents, registered before it is asked
/// for: a deployment of the same matrix running beside this one is not "from an earlier run".
static THIS_RUN: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Remembers that this process rents `name`.
pub fn register(name: &str) {
    if let Ok(mut v) = THIS_RUN.lock() {
        v.push(name.to_string());
    }
}

/// Whether this process rents `name` (else a leftover of an earlier run).
pub fn this_run(name: &str) -> bool {
    THIS_RUN
        .lock()
        .map(|v| v.iter().any(|n| n == name))
        .unwrap_or(false)
}

/// How long something has lived, `secs` of it: `5m3s`, `3h12m`, `2d4h`.
pub fn age_text(secs: i64) -> String {
    match secs.max(0) {
        s if s >= 86_400 => format!("{}d{}h", s / 86_400, s % 86_400 / 3600),
        s if s >= 3600 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        s => format!("{}m{}s", s / 60, s % 60),
    }
}

/// Percent-encodes a path segment or query value (GPU type ids contain spaces).
pub fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The providers whose drift this process has said already (the estimate and the run each have
/// an API client; the user hears it once per provider).
static SAID: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

/// Remembers the first difference between a provider's answer and its document, so it is said
/// once.
pub struct Drift {
    provider: &'static str,
    first: Mutex<Option<String>>,
}

impl Drift {
    /// For `provider`'s answers (`RunPod`, `Vast.ai`).
    pub fn new(provider: &'static str) -> Self {
        Self {
            provider,
            first: Mutex::new(None),
        }
    }

    /// Checks `bytes` (the answer to `what`) against the document's type `Strict`; the first
    /// difference this client finds is kept, and returned to be said when this process has
    /// said none yet.
    pub fn check<Strict: DeserializeOwned>(&self, what: &str, bytes: &[u8]) -> Option<String> {
        if self.first.lock().ok()?.is_some() {
            return None;
        }
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let err = serde_path_to_error::deserialize::<_, Strict>(&mut de).err()?;
        let mut first = self.first.lock().ok()?;
        if first.is_some() {
            return None;
        }
        let path = err.path().to_string();
        let msg = format!(
            "{}'s answer to {what} differs from its document at `{path}`: {}; the tool reads only the fields it needs and goes on",
            self.provider,
            mismatch(&err.inner().to_string())
        );
        *first = Some(msg.clone());
        let mut said = SAID.lock().ok()?;
        let first_said = !said.contains(&self.provider);
        said.push(self.provider);
        first_said.then_some(msg)
    }

    /// The first difference seen, if any.
    pub fn first(&self) -> Option<String> {
        self.first.lock().ok().and_then(|f| f.clone())
    }
}

/// The kind of a mismatch, never the value: serde quotes what it found ("invalid type: string
/// \"HF_TOKEN=hf_… VLLM_API_KEY=…\", expected a map"), and a pod's `env` holds the user's
/// tokens and the server's key. What the document expected is kept (it comes from the
/// document, not the answer).
fn mismatch(serde_msg: &str) -> String {
    // serde_json appends " at line L column C".
    let msg = serde_msg.split(" at line ").next().unwrap_or(serde_msg);
    let expected = msg
        .split_once(", expected ")
        .map(|(_, e)| format!(", expected {e}"))
        .unwrap_or_default();
    let head = |prefix: &str| msg.strip_prefix(prefix).map(str::trim_start);
    if let Some(rest) = head("invalid type:") {
        // "string \"…\"", "integer `5`", "map", "sequence": the first word is the kind.
        let found = rest.split([' ', ',']).next().unwrap_or("value");
        return format!("found a {found} (value not shown){expected}");
    }
    if head("invalid value:").is_some() {
        return format!("a value of the wrong form (not shown){expected}");
    }
    if head("unknown variant").is_some() {
        return format!("a value the document does not list (not shown){expected}");
    }
    if let Some(rest) = head("invalid length") {
        return format!(
            "a list of another length{}",
            rest.split_once(',')
                .map_or(String::new(), |(_, e)| format!(",{e}"))
        );
    }
    if msg.starts_with("missing field") || msg.starts_with("unknown field") {
        // Field names come from the document or the answer's keys, never its values.
        return msg.to_string();
    }
    "a value of another shape (not shown)".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_names_the_field_and_the_kind_never_the_value() {
        // RunPod answering a pod's `env` as one "K=V K=V" string instead of a map.
        let pod = serde_json::json!({
            "id": "p1", "name": "llm-inf-bench-x", "status": "RUNNING",
            "env": "HF_TOKEN=hf_secret_123 VLLM_API_KEY=sk-server-456"
        });
        let d = Drift::new("RunPod");
        // The document's shape: `env` a map of strings.
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct Pod {
            id: String,
            env: Option<std::collections::BTreeMap<String, String>>,
        }
        d.check::<Pod>("GET /pods/p1", &serde_json::to_vec(&pod).unwrap());
        let msg = d.first().expect("a drift");
        assert!(msg.contains("`env`"), "{msg}");
        assert!(msg.contains("found a string"), "{msg}");
        assert!(
            !msg.contains("hf_secret_123") && !msg.contains("sk-server-456"),
            "{msg}"
        );
        assert!(!msg.contains("HF_TOKEN="), "{msg}");
        for (serde, shown) in [
            (
                "invalid value: integer `-5`, expected u32 at line 1 column 9",
                "wrong form",
            ),
            (
                "unknown variant `sk-1`, expected one of `A`, `B`",
                "does not list",
            ),
            ("missing field `id`", "missing field `id`"),
            ("something \"sk-1\" else", "another shape"),
        ] {
            let m = mismatch(serde);
            assert!(
                m.contains(shown) && !m.contains("sk-1") && !m.contains("-5"),
                "{m}"
            );
        }
    }

    #[test]
    fn encodes_gpu_ids() {
        assert_eq!(
            encode("NVIDIA H100 80GB HBM3"),
            "NVIDIA%20H100%2080GB%20HBM3"
        );
    }
}
