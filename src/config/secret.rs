//! Secrets (API keys, tokens) in a type that cannot be printed, logged or serialized by accident.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// A secret string. `Debug` and `Display` print `<redacted>`; there is no `Serialize`.
/// Read it with [`Secret::expose`] only where it is sent to the service it belongs to.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The secret itself. Call only to put it on the wire (an `Authorization` header).
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// A fresh random key (`llmib-` and 48 hex digits from the thread's CSPRNG, seeded by the
    /// OS): for a server this tool starts where others could reach it.
    pub fn random_key() -> Self {
        let bytes: [u8; 24] = rand::random();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Self(format!("llmib-{hex}"))
    }

    /// Reads a secret from an environment variable; empty counts as unset.
    pub fn from_env(var: &str) -> Option<Self> {
        std::env::var(var).ok().filter(|v| !v.is_empty()).map(Self)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_the_value() {
        let s = Secret::new("sk-very-secret");
        assert!(!format!("{s:?} {s} {:?}", Some(&s)).contains("very-secret"));
        assert_eq!(s.expose(), "sk-very-secret");
    }
}
