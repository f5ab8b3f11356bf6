//! What the providers' API clients share: tolerant decoding of an answer's fields (a field of
//! the wrong shape reads as absent, a list keeps the elements it can read) and the
//! percent-encoding of a path segment or query value.

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

#[cfg(test)]
mod tests {
    #[test]
    fn encodes_gpu_ids() {
        assert_eq!(
            super::encode("NVIDIA H100 80GB HBM3"),
            "NVIDIA%20H100%2080GB%20HBM3"
        );
    }
}
