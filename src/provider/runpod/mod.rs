//! `provider: runpod` — RunPod's REST API v2.

pub mod types;
