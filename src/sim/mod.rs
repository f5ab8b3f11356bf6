//! The simulated inference server (`serve-sim`, `provider: simulator`).

/// Engine profiles the simulator knows.
pub const PROFILE_NAMES: &[&str] = &["h100-llama8b", "a100-llama70b", "instant"];
